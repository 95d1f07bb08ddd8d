"""PyTorch eager on the CPU: the float edge and cloud as trained. It exports nothing (a target
profile cannot pick it); it is the reference every exported artifact is compared with."""

from ..base import Backend

BACKEND = Backend(
    name="torch",
    label="PyTorch eager (float)",
    package=__name__,
    packages=("torch",),
    runtime_modules=(("torch",),),
    install_hint="pip install torch==2.13.0 './sift-deploy[export]'",
)
