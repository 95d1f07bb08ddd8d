"""sift-deploy: split, quantize, export and privacy-check SiftFunnel models for edge devices."""

__version__ = "0.1.0"
