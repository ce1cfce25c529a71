"""Invariants of schedules, samplers and guidance (spec section 7.1), on analytic denoisers."""

from __future__ import annotations


import pytest
import torch

from prestissimo.models.denoiser import Conditioning, add_noise, alpha_sigma, t_from_logsnr, x0_from_velocity
from prestissimo.sampling import (cfg_denoiser, linear_schedule, logsnr_schedule, null_conditioning,
                                  sample_dpmpp_2m, sample_euler, sample_pingpong)

OBJECTIVES = ["rectified_flow", "rf_denoiser", "v"]


def test_pingpong_schedule_matches_released_values():
    ts = logsnr_schedule(8, "rf_denoiser")
    expected = [1, 0.9933, 0.9820, 0.9526, 0.8808, 0.7311, 0.5, 0.2689, 0]
    assert torch.allclose(ts, torch.tensor(expected, dtype=torch.float64), atol=1e-4)


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("steps", [1, 2, 8, 100])
def test_schedules_hit_endpoints_and_decrease(objective, steps):
    for ts in (logsnr_schedule(steps, objective), linear_schedule(steps)):
        assert len(ts) == steps + 1 and ts[0] == 1 and ts[-1] == 0
        assert torch.all(ts[1:] < ts[:-1])


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_schedule_rejects_bad_steps(bad):
    with pytest.raises(ValueError):
        logsnr_schedule(bad, "v")


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_objective_round_trip(objective):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(4, 3, 5, generator=g, dtype=torch.float64), torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    t = torch.tensor([0.0, 0.3, 0.7, 1.0], dtype=torch.float64)
    xt = add_noise(x0, eps, t, objective)
    alpha, sigma = alpha_sigma(t, objective)
    v = (eps - x0) if objective != "v" else alpha.view(-1, 1, 1) * eps - sigma.view(-1, 1, 1) * x0
    assert torch.allclose(x0_from_velocity(xt, t, v, objective), x0, atol=1e-12)
    assert torch.allclose(add_noise(x0, eps, torch.zeros(4, dtype=torch.float64), objective), x0)
    lam = torch.log(alpha[1:3] / sigma[1:3])
    assert torch.allclose(t_from_logsnr(lam, objective), t[1:3], atol=1e-12)


class Counter:
    """An oracle denoiser for delta-data (all mass at x_star) that counts its calls."""

    def __init__(self, x_star: torch.Tensor):
        self.x_star, self.calls = x_star, 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        assert t.shape == (x.shape[0],)
        return self.x_star.expand_as(x)


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("steps", [1, 2, 3, 8])
def test_delta_data_oracle_returns_the_point(objective, steps):
    x_star = torch.randn(1, 4, 6, dtype=torch.float64)
    for seed in (0, 1):
        noise = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        ts = logsnr_schedule(steps, objective)
        for run in (lambda d: sample_pingpong(d, noise, ts, objective, generator=torch.Generator().manual_seed(seed)),
                    lambda d: sample_dpmpp_2m(d, noise, ts, objective)):
            oracle = Counter(x_star)
            assert torch.allclose(run(oracle), x_star.expand(2, -1, -1), atol=1e-6)
            assert oracle.calls == steps
    if objective != "v":
        out = sample_euler(Counter(x_star), noise, linear_schedule(1), objective)
        assert torch.allclose(out, x_star.expand(2, -1, -1), atol=1e-6)


def test_one_step_pingpong_is_one_denoise_and_ignores_later_noise():
    torch.manual_seed(0)
    w = torch.randn(4, 4, dtype=torch.float64)
    velocity = lambda x, t: torch.einsum("ij,bjl->bil", w, x) * t.view(-1, 1, 1)  # noqa: E731
    denoise = lambda x, t: x0_from_velocity(x, t, velocity(x, t), "rf_denoiser")  # noqa: E731
    eps = torch.randn(2, 4, 5, dtype=torch.float64)
    ts = logsnr_schedule(1, "rf_denoiser")
    expected = eps - 1.0 * velocity(eps, torch.ones(2, dtype=torch.float64))
    a = sample_pingpong(denoise, eps, ts, generator=torch.Generator().manual_seed(1))
    b = sample_pingpong(denoise, eps, ts, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(a, expected) and torch.equal(a, b)
    # With more steps fresh noise matters: different generators give different outputs.
    ts8 = logsnr_schedule(8, "rf_denoiser")
    c = sample_pingpong(denoise, eps, ts8, generator=torch.Generator().manual_seed(1))
    d = sample_pingpong(denoise, eps, ts8, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(c, d)


def linear_velocity_denoiser(objective: str = "rf_denoiser"):
    """A non-trivial deterministic denoiser: a fixed linear map of x, scaled by t."""
    w = torch.randn(4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return lambda x, t: x0_from_velocity(x, t, torch.einsum("ij,bjl->bil", w, x) * t.view(-1, 1, 1), objective)


@pytest.mark.parametrize("objective", ["rectified_flow", "rf_denoiser"])
@pytest.mark.parametrize("steps", [2, 8])
def test_pingpong_at_eta_0_is_the_euler_ode_step_on_the_same_times(objective, steps):
    # Re-noising with the predicted noise alone, (1 - t') x0 + t' (x - (1 - t) x0) / t, is algebraically
    # Euler's x + (t' - t)(x - x0) / t for straight flows: eta = 0 leaves no fresh noise in the output.
    denoise = linear_velocity_denoiser(objective)
    eps = torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ts = logsnr_schedule(steps, objective)
    a = sample_pingpong(denoise, eps, ts, objective, generator=torch.Generator().manual_seed(1), eta=0.0)
    b = sample_pingpong(denoise, eps, ts, objective, generator=torch.Generator().manual_seed(2), eta=0.0)
    assert torch.allclose(a, sample_euler(denoise, eps, ts, objective), atol=1e-10) and torch.allclose(a, b)


def test_pingpong_eta_1_is_plain_pingpong_and_eta_between_keeps_unit_variance_noise():
    denoise = linear_velocity_denoiser()
    eps = torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    ts = logsnr_schedule(8, "rf_denoiser")
    plain = sample_pingpong(denoise, eps, ts, generator=torch.Generator().manual_seed(1))
    assert torch.equal(plain, sample_pingpong(denoise, eps, ts, generator=torch.Generator().manual_seed(1), eta=1.0))
    half = sample_pingpong(denoise, eps, ts, generator=torch.Generator().manual_seed(1), eta=0.5)
    assert not torch.allclose(half, plain)
    # One re-noising from t = 1 with a constant x0: the predicted noise is the input noise itself, so the
    # new state's noise sqrt(1 - eta^2) eps + eta z must stay unit variance and correlate eta-wise with z.
    big = torch.randn(1, 1, 200000, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    ts2 = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    states = []
    record = lambda x, t: (states.append(x.clone()), torch.full_like(x, 0.3))[1]  # noqa: E731
    sample_pingpong(record, big, ts2, generator=torch.Generator().manual_seed(6), eta=0.6)
    noise = (states[1] - 0.5 * 0.3) / 0.5
    assert abs(float(noise.std()) - 1.0) < 0.01
    assert abs(float(torch.corrcoef(torch.stack([noise.flatten(), big.flatten()]))[0, 1]) - 0.8) < 0.01


@pytest.mark.parametrize("eta", [-0.1, 1.5, float("nan")])
def test_pingpong_refuses_eta_outside_0_1(eta):
    with pytest.raises(ValueError, match="eta"):
        sample_pingpong(Counter(torch.zeros(1, 1, 1)), torch.zeros(1, 1, 1), logsnr_schedule(2, "rf_denoiser"), eta=eta)


def gaussian_denoiser(mu: float, s: float, objective: str):
    """Exact posterior mean E[x0 | x_t] for data x0 ~ N(mu, s^2): its probability-flow ODE maps noise to data."""

    def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        alpha, sigma = alpha_sigma(t.to(torch.float64), objective)
        alpha, sigma = alpha.view(-1, 1, 1), sigma.view(-1, 1, 1)
        return mu + alpha * s**2 * (x - alpha * mu) / (alpha**2 * s**2 + sigma**2)

    return denoise


@pytest.mark.parametrize("objective,sampler", [("rectified_flow", "euler"), ("rectified_flow", "dpmpp-2m"),
                                               ("v", "dpmpp-2m")])
def test_ode_samplers_reach_the_data_distribution(objective, sampler):
    mu, s = 0.7, 0.3
    noise = torch.randn(1, 1, 20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    denoise = gaussian_denoiser(mu, s, objective)
    if sampler == "euler":
        out = sample_euler(denoise, noise, linear_schedule(200), objective)
    else:
        out = sample_dpmpp_2m(denoise, noise, logsnr_schedule(50, objective, -8, 8), objective)
    # The exact ODE solution is the affine map noise -> mu + s * noise.
    assert torch.allclose(out, mu + s * noise, atol=2e-2)
    assert abs(float(out.mean()) - mu) < 0.01 and abs(float(out.std()) - s) < 0.01


def test_dpmpp_second_order_beats_first_order():
    mu, s = 0.7, 0.3
    noise = torch.randn(1, 1, 1000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    denoise = gaussian_denoiser(mu, s, "v")
    exact = mu + s * noise
    ts = logsnr_schedule(6, "v", -8, 8)
    err2 = (sample_dpmpp_2m(denoise, noise, ts, "v") - exact).abs().max()
    # first order = DDIM: x_next = (sigma'/sigma) x + (alpha' - alpha sigma'/sigma) x0
    x = noise
    for i in range(6):
        t, tn = ts[i:i + 1], ts[i + 1:i + 2]
        x0 = denoise(x, t)
        a, sg = alpha_sigma(t, "v")
        an, sn = alpha_sigma(tn, "v")
        x = x0 if float(tn) == 0 else (sn / sg) * x + (an - a * sn / sg) * x0
    err1 = (x - exact).abs().max()
    assert err2 < err1


def test_cfg_scale_one_makes_no_unconditional_pass():
    calls = []

    def denoise(x, t, cond):
        calls.append(x.shape[0])
        return x * cond.global_cond.view(-1, 1, 1)

    cond = Conditioning(context=torch.ones(2, 3, 4), global_cond=torch.full((2, 1), 2.0))
    fn = cfg_denoiser(denoise, cond, null_conditioning(cond), 1.0)
    fn(torch.ones(2, 1, 1), torch.ones(2))
    assert calls == [2]


def test_cfg_combines_cond_and_uncond_in_one_batched_call():
    calls = []

    def denoise(x, t, cond):
        calls.append(x.shape[0])
        return x + cond.context.sum(dim=(1, 2)).view(-1, 1, 1)

    cond = Conditioning(context=torch.ones(2, 3, 4), global_cond=torch.ones(2, 5))
    uncond = null_conditioning(cond)
    assert torch.equal(uncond.context, torch.zeros(2, 3, 4)) and torch.equal(uncond.global_cond, cond.global_cond)
    out = cfg_denoiser(denoise, cond, uncond, 3.0)(torch.zeros(2, 1, 1), torch.ones(2))
    # cond output 12, uncond output 0 -> 0 + 3 * (12 - 0)
    assert calls == [4] and torch.allclose(out, torch.full((2, 1, 1), 36.0))


def test_null_conditioning_zeroes_a_pooled_prompt_in_the_global_vector():
    mask = torch.tensor([True, True, False])
    cond = Conditioning(context=torch.ones(2, 3, 4), global_cond=torch.full((2, 3), 2.0), global_prompt_mask=mask)
    uncond = null_conditioning(cond)
    assert uncond.global_cond.tolist() == [[0, 0, 2], [0, 0, 2]] and uncond.context.abs().sum() == 0
    seen = []
    cfg_denoiser(lambda x, t, c: seen.append(c) or x, cond, uncond, 2.0)(torch.zeros(2, 1, 1), torch.ones(2))
    assert seen[0].global_cond[2:, :2].abs().sum() == 0 and torch.equal(seen[0].global_prompt_mask, mask)
