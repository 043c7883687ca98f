"""Tests of course_lib.icl: linear self-attention as one step of gradient descent.

References are independent of the code under test: the GD step is recomputed with
torch.autograd on the in-context loss in float64, the attention update with an explicit
loop over tokens, input sensitivities with torch.func.jacrev.
"""

import pytest
import torch

from course_lib import icl


def tasks64(num_tasks=64, seed=0, **options):
    generator = torch.Generator().manual_seed(seed)
    return icl.sample_tasks(num_tasks, generator=generator, dtype=torch.float64, **options)


def reference_gd_step(tasks, lr):
    """w_1 = -lr * grad L(0), L(w) = 1/(2N) sum_i (w^T x_i - y_i)^2, by autograd (float64)."""
    x, y = tasks.context_x.double(), tasks.context_y.double()
    w = torch.zeros(x.shape[0], x.shape[2], dtype=torch.float64, requires_grad=True)
    loss = 0.5 * ((torch.einsum("bnd,bd->bn", x, w) - y) ** 2).mean(dim=1)
    (gradient,) = torch.autograd.grad(loss.sum(), w)
    return -lr * gradient


def reference_lsa(model, tokens):
    """e_j + sum_h P_h W_v,h (1/N) sum_i e_i e_i^T W_k,h^T W_q,h e_j, one token at a time."""
    out = tokens.clone()
    context = tokens[:, :-1]
    n = context.shape[1]
    for b in range(tokens.shape[0]):
        for j in range(tokens.shape[1]):
            e_j = tokens[b, j]
            for h in range(model.query.shape[0]):
                wq, wk = model.query[h], model.key[h]
                wv, p = model.value[h], model.projection[h]
                total = sum(e_i * (e_i @ wk.T @ wq @ e_j) for e_i in context[b])
                out[b, j] = out[b, j] + p @ wv @ total / n
    return out


def test_tasks_shapes_and_tokens():
    tasks = tasks64(num_tasks=5, dim=3, num_context=7)
    assert tasks.context_x.shape == (5, 7, 3)
    assert tasks.context_y.shape == (5, 7)
    assert tasks.query_x.shape == (5, 3)
    assert tasks.query_y.shape == (5,)
    tokens = tasks.tokens()
    assert tokens.shape == (5, 8, 4)
    assert torch.equal(tokens[:, -1, -1], torch.zeros(5, dtype=torch.float64))
    assert torch.equal(tokens[:, :-1, -1], tasks.context_y)
    targets = torch.einsum("bnd,bd->bn", tasks.context_x, tasks.weights)
    torch.testing.assert_close(tasks.context_y, targets)
    torch.testing.assert_close(tasks.query_y, (tasks.query_x * tasks.weights).sum(-1))
    assert tasks.context_x.abs().max() <= 1
    scaled = tasks64(num_tasks=5, dim=3, num_context=7, input_scale=2.0)
    torch.testing.assert_close(scaled.context_x, 2 * tasks.context_x)


@pytest.mark.parametrize("lr", [0.1, 0.7, 1.5])
def test_construction_is_one_gd_step_float64(lr):
    tasks = tasks64()
    w1 = reference_gd_step(tasks, lr)
    model = icl.gd_construction(lr, dtype=torch.float64)
    expected = (w1 * tasks.query_x).sum(-1)
    torch.testing.assert_close(model.predict(tasks.tokens()), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(icl.gd_predict(tasks, lr), expected, rtol=1e-12, atol=1e-12)
    # Every token's y-slot becomes the residual y_j - w_1^T x_j; the x-slots do not move.
    out = model(tasks.tokens())
    x = torch.cat([tasks.context_x, tasks.query_x.unsqueeze(1)], dim=1)
    y = torch.cat([tasks.context_y, torch.zeros_like(tasks.query_y).unsqueeze(1)], dim=1)
    residual = y - torch.einsum("btd,bd->bt", x, w1)
    torch.testing.assert_close(out[..., -1], residual, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out[..., :-1], x, rtol=0, atol=0)


def test_construction_matches_gd_to_float32_precision_on_random_tasks():
    tasks = tasks64(num_tasks=2000, seed=3)
    expected = (reference_gd_step(tasks, 0.5) * tasks.query_x).sum(-1)
    model = icl.gd_construction(0.5)
    tokens32 = tasks.tokens().float()
    got = model.predict(tokens32).double()
    scale = expected.abs().max()
    assert (got - expected).abs().max() <= 16 * torch.finfo(torch.float32).eps * scale


def test_forward_matches_explicit_attention_and_predict_reads_minus_y_slot():
    generator = torch.Generator().manual_seed(1)
    model = icl.LinearSelfAttention(dim=3, num_heads=2, init_scale=0.5, generator=generator)
    model = model.double()
    tokens = tasks64(num_tasks=3, dim=3, num_context=4).tokens()
    out = model(tokens)
    torch.testing.assert_close(out, reference_lsa(model, tokens), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(model.predict(tokens), -out[:, -1, -1], rtol=1e-12, atol=1e-12)


def test_best_gd_lr_is_the_minimiser():
    tasks = tasks64(num_tasks=500)

    def loss(lr):
        prediction = (reference_gd_step(tasks, lr) * tasks.query_x).sum(-1)
        return 0.5 * ((prediction - tasks.query_y) ** 2).mean()

    best = icl.best_gd_lr(tasks)
    lr = torch.tensor(best, dtype=torch.float64, requires_grad=True)
    (slope,) = torch.autograd.grad(loss(lr), lr)
    assert abs(slope.item()) < 1e-10
    assert loss(best) < loss(best - 0.05) and loss(best) < loss(best + 0.05)


def test_compare_construction_with_gd_is_exact():
    model = icl.gd_construction(0.6, dtype=torch.float64)
    result = icl.compare_on_tasks(model, tasks64(num_tasks=200), gd_lr=0.6)
    assert result["prediction_diff"] < 1e-24
    assert result["sensitivity_cosine"] == pytest.approx(1.0, abs=1e-12)
    assert result["lsa_loss"] == pytest.approx(result["gd_loss"], rel=1e-12)
    # A different step size: same direction of sensitivity, different predictions.
    other = icl.compare_on_tasks(model, tasks64(num_tasks=200), gd_lr=0.3)
    assert other["sensitivity_cosine"] == pytest.approx(1.0, abs=1e-12)
    assert other["prediction_diff"] > 1e-3


def test_sensitivity_cosine_of_a_random_model_matches_jacobians():
    generator = torch.Generator().manual_seed(2)
    model = icl.LinearSelfAttention(dim=4, num_heads=2, init_scale=0.5, generator=generator)
    model = model.double()
    tasks = tasks64(num_tasks=6, dim=4, num_context=5)
    result = icl.compare_on_tasks(model, tasks, gd_lr=0.8)
    cosines = []
    for b in range(6):
        context = torch.cat([tasks.context_x[b], tasks.context_y[b, :, None]], dim=-1)

        def lsa(xq, context=context):
            query = torch.cat([xq, torch.zeros(1, dtype=xq.dtype)])
            return model.predict(torch.cat([context, query[None]])[None])[0]

        gd_gradient = 0.8 * (tasks.context_y[b, :, None] * tasks.context_x[b]).mean(0)
        lsa_gradient = torch.func.jacrev(lsa)(tasks.query_x[b])
        cosines.append((lsa_gradient @ gd_gradient) / (lsa_gradient.norm() * gd_gradient.norm()))
    expected = torch.stack(cosines).mean().item()
    assert result["sensitivity_cosine"] == pytest.approx(expected, abs=1e-12)
    assert abs(expected) < 0.99  # a random layer is not GD


def test_invalid_arguments_raise_value_error_naming_them():
    cases = [
        (lambda: icl.sample_tasks(0), "num_tasks"),
        (lambda: icl.sample_tasks(4, dim=0), "dim"),
        (lambda: icl.sample_tasks(4, num_context=0), "num_context"),
        (lambda: icl.sample_tasks(4, input_scale=0.0), "input_scale"),
        (lambda: icl.LinearSelfAttention(dim=0), "dim"),
        (lambda: icl.LinearSelfAttention(num_heads=0), "num_heads"),
        (lambda: icl.LinearSelfAttention(init_scale=-1.0), "init_scale"),
        (lambda: icl.LinearSelfAttention(dim=3)(torch.zeros(2, 5, 5)), "tokens"),
        (lambda: icl.LinearSelfAttention(dim=3).predict(torch.zeros(2, 1, 4)), "tokens"),
        (lambda: icl.gd_construction(float("nan")), "lr"),
        (lambda: icl.train_lsa(steps=0), "steps"),
        (lambda: icl.train_lsa(batch_size=0), "batch_size"),
        (lambda: icl.train_lsa(lr=0.0), "lr"),
        (lambda: icl.compare_with_gd(icl.gd_construction(1.0), input_scale=-1), "input_scale"),
        (lambda: icl.out_of_distribution(icl.gd_construction(1.0), []), "alphas"),
    ]
    for make, name in cases:
        with pytest.raises(ValueError, match=name):
            make()


def test_dtype_follows_the_model():
    model, history = icl.train_lsa(steps=3, batch_size=8, dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert len(history["losses"]) == 3
    result = icl.compare_with_gd(model, num_tasks=50)
    assert set(result) >= {"lsa_loss", "gd_loss", "gd_lr", "prediction_diff"}
    assert "sensitivity_cosine" in result


def test_short_training_improves():
    model, history = icl.train_lsa(steps=300, batch_size=256, seed=0)
    losses = torch.tensor(history["losses"])
    assert losses[-20:].mean() < 0.7 * losses[:20].mean()
    untrained = icl.LinearSelfAttention(init_scale=0.02, generator=torch.Generator().manual_seed(0))
    before = icl.compare_with_gd(untrained, num_tasks=2000)
    after = icl.compare_with_gd(model, num_tasks=2000)
    assert after["lsa_loss"] < 0.7 * before["lsa_loss"]
    assert after["sensitivity_cosine"] > before["sensitivity_cosine"] + 0.5


def test_out_of_distribution_both_degrade_alike():
    model = icl.gd_construction(1.0)
    ood = icl.out_of_distribution(model, [0.5, 1.0, 2.0], gd_lr=1.0, num_tasks=2000)
    for lsa, gd in zip(ood["lsa_loss"], ood["gd_loss"], strict=True):
        assert lsa == pytest.approx(gd, rel=1e-5)
    relative = [
        loss / base for loss, base in zip(ood["gd_loss"], ood["baseline_loss"], strict=True)
    ]
    # One GD step's prediction grows as alpha^3 while the target grows as alpha.
    assert relative[2] > 2 * relative[1]


def test_trained_layer_meets_targets_for_one_seed():
    model, history = icl.train_lsa(seed=0)
    result = icl.compare_with_gd(model)
    assert abs(result["lsa_loss"] - result["gd_loss"]) <= 0.01 * result["gd_loss"]
    assert result["sensitivity_cosine"] >= 0.99
    assert result["lsa_loss"] < 0.6 * result["baseline_loss"]
