"""Stage: how much the transmitted features say about the input, for float, deployed and twin:
MINE I(x; z) (with the cross-critic rule for float vs deployed), distance correlation dCor(x, z)
and the non-zero entries of z."""

from __future__ import annotations

from ..documents.check_report import InformationSection
from ..privacy.budget import AttackBudget
from .context import CheckContext, Progress

NAME = "information (MINE, dCor)"
SLOT = ("information",)


def run(ctx: CheckContext, budget: AttackBudget, seed: int, progress: Progress) -> InformationSection:
    from ..privacy.dependence import distance_correlation, nonzero_stats
    from ..privacy.mine import estimate_mutual_information

    sides = {"float": ctx.float_side, "deployed": ctx.deployed_side, "twin": ctx.twin_side}
    x_aux, x_test = ctx.x_aux, ctx.x_test
    mine_n, held_n = min(budget.mine_train_pairs, ctx.aux_count), min(budget.mine_heldout_pairs, ctx.test_count)
    dcor_n = min(budget.dcor_samples, ctx.test_count)
    info, critics = {}, {}
    for label, side in sides.items():
        mine = estimate_mutual_information(x_aux[:mine_n], side.z_aux[:mine_n], x_test[:held_n], side.z_test[:held_n],
                                           seed=seed, epochs=budget.mine_epochs, lr=budget.mine_lr,
                                           on_step=lambda r, label=label: progress(f"MINE {label}", r.step, r.total))
        critics[label] = mine
        info[label] = {"mi_nats": mine.mi_nats, "mi_own_critic_nats": mine.mi_nats, "mine": mine.as_dict(),
                       "dcor": distance_correlation(x_test[:dcor_n], side.z_test[:dcor_n], seed=seed),
                       "nonzero": nonzero_stats(side.z_test).as_dict()}
    # Each critic's DV bound is a lower bound on any side's MI. Scoring float and deployed pairs with both
    # critics and keeping the larger bound removes most of the critic-training noise from the comparison
    # (with one critic per side, deployed - float swung by up to 0.5 nats between critic seeds on the reference).
    for label, other in (("float", "deployed"), ("deployed", "float")):
        cross = critics[other].bound_on(x_test[:held_n], sides[label].z_test[:held_n])
        info[label]["mi_other_critic_nats"] = cross
        info[label]["mi_nats"] = max(info[label]["mi_own_critic_nats"], cross)
    return InformationSection(**info)
