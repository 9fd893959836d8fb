"""The sampler's fast paths compute the same maths: eager attention, bf16 autocast, masks drawn per
stage, history fetched every few steps. (How much faster is benchmarks/speed_cpu.py's business.)"""
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from cag_lib.generate import Forward, GenerateConfig, generate, objective_for
from cag_lib.models import attention_layers, eager_attention
from cag_lib.zoo import load_bundle

QUICK = GenerateConfig(steps=4, progress=False)
TARGETS = [0, 3, 3, 7, 9, 9]


@pytest.fixture(scope="module")
def bundle():
    return load_bundle("fmnist")


def test_eager_attention_is_the_same_maths_and_is_undone(bundle):
    nets = [bundle.mae, *bundle.classifiers]
    layers = attention_layers(nets)
    assert len(layers) == 4 + 2 + 4        # the MAE's encoder and decoder blocks, the ViT's blocks
    x = torch.rand(3, 1, 32, 32)
    noise = bundle.mae.mask_noise(3, torch.Generator().manual_seed(0))
    fused = bundle.mae.reconstruct(x, noise=noise), bundle.classifiers[1](x).logits
    with eager_attention(layers):
        assert not any(m.fused_attn for m in layers)
        eager = bundle.mae.reconstruct(x, noise=noise), bundle.classifiers[1](x).logits
    assert all(m.fused_attn for m in layers)
    for a, b in zip(fused, eager):
        assert not torch.equal(a, b) and torch.allclose(a, b, atol=1e-5)   # other ops, same numbers


def test_eager_attention_is_undone_after_an_error(bundle):
    layers = attention_layers([bundle.mae])
    with pytest.raises(RuntimeError):
        with eager_attention(layers):
            raise RuntimeError
    assert all(m.fused_attn for m in layers)


@pytest.mark.parametrize("autocast, attention, eager", [("", "auto", False), ("bf16", "auto", True),
                                                         ("bf16", "sdpa", False), ("", "eager", True)])
def test_auto_attention_is_eager_under_autocast_on_the_cpu(bundle, autocast, attention, eager):
    cfg = replace(QUICK, autocast=autocast, attention=attention)
    assert Forward(bundle.mae, bundle.classifiers, cfg, torch.Generator()).eager is eager


def gradient(bundle, cfg, x, noise):
    """The objective's value and its gradient with respect to x, on one mask."""
    objective = objective_for(bundle, cfg, [0, 1])
    x = x.clone().requires_grad_(True)
    total, _ = objective.evaluate(Forward(bundle.mae, bundle.classifiers, cfg, torch.Generator())(
        x, torch.tensor(TARGETS), noise))
    total.mean().backward()
    return total.mean().item(), x.grad.flatten()


def test_bf16_and_eager_attention_give_the_fp32_objective_and_gradient(bundle):
    x = torch.rand(len(TARGETS), 1, 16, 16, generator=torch.Generator().manual_seed(1))
    noise = bundle.mae.mask_noise(len(TARGETS), torch.Generator().manual_seed(2))
    loss, grad = gradient(bundle, QUICK, x, noise)
    for changes, tol_loss, tol_cos in ((dict(attention="eager"), 1e-5, 1e-3), (dict(autocast="bf16"), 0.02, 0.02)):
        other_loss, other_grad = gradient(bundle, replace(QUICK, **changes), x, noise)
        assert abs(other_loss / loss - 1) < tol_loss, changes
        assert F.cosine_similarity(grad, other_grad, dim=0) > 1 - tol_cos, changes
    fp32, bf16 = (generate(bundle, TARGETS, replace(QUICK, autocast=a)) for a in ("", "bf16"))
    assert not torch.equal(fp32.images, bf16.images)     # bf16 did run in bf16


def test_masks_drawn_per_stage_are_the_per_step_draws(bundle):
    fw = Forward(bundle.mae, bundle.classifiers, QUICK, torch.Generator())
    at_once = fw.masks(5, 3, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    one_by_one = [bundle.mae.mask_noise(5, g, device="cpu") for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(at_once, one_by_one))
    assert fw.masks(5, 3, g)[0].shape == (5, bundle.mae.num_patches)
    assert fw.masks(5, 0, g) == []                        # a stage without steps
    assert generate(bundle, [1], replace(QUICK, steps=3)).history["resolution"] == [8, 16, 32]
    assert Forward(bundle.mae, bundle.classifiers, replace(QUICK, use_mae=False), g).masks(5, 3, g) == [None] * 3


def test_history_is_fetched_in_blocks_but_complete(bundle):
    res = generate(bundle, TARGETS[:2], replace(QUICK, steps=30, resolutions=(32,)))  # fetched at 25 and at the end
    assert len(res.history["loss"]) == len(res.history["cls"]) == len(res.history["target_prob"]) == 30
    assert all(isinstance(v, float) for v in res.history["loss"])


def test_a_non_finite_step_is_named_when_fetched(bundle):
    from cag_lib.errors import NonFiniteError
    from cag_lib.objectives import Objective, classification
    calls = []

    def late_nan(v):                                  # finite for 3 steps, then NaN
        calls.append(1)
        return v.x.sum() * (float("nan") if len(calls) > 3 else 0.0)
    obj = classification() + Objective.term("late", late_nan)
    with pytest.raises(NonFiniteError, match="at step 4"):
        generate(bundle, [0], replace(QUICK, steps=10, resolutions=(32,)), objective=obj)


ROOT = __import__("pathlib").Path(__file__).parents[1]


def script(name: str, *args) -> None:
    import subprocess
    import sys
    subprocess.run([sys.executable, f"benchmarks/{name}", *args], cwd=ROOT, check=True, capture_output=True)


def test_the_cpu_speed_benchmark_runs_small_and_renders_its_tables(tmp_path):
    import json
    out = tmp_path / "speed.json"
    script("speed_cpu.py", "--batch", "4", "--steps", "3", "--rounds", "1", "--full-steps", "3", "--no-compile",
           "--threads", "1", "--json", str(out))
    r = json.loads(out.read_text())
    assert [v["variant"] for v in r["variants"]] == ["before", "+ channels_last", "+ bf16 autocast",
                                                     "+ eager attention"]
    assert r["full_run"]["steps"] == 3 and r["full_run"]["after"]["seconds"] > 0
    assert len(r["profile"]["after"]["top"]) == 10
    import importlib.util
    spec = importlib.util.spec_from_file_location("speed_cpu", ROOT / "benchmarks" / "speed_cpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    page = mod.tables(r, json.loads(mod.PANEL.read_text()))
    assert f"| + eager attention | {r['variants'][-1]['ms_per_step']} |" in page and "| bf16 |" in page


def test_the_gpu_sweep_runs_small_on_the_cpu_and_keeps_to_its_budget(tmp_path):
    import json
    out = tmp_path / "sweep.json"
    tiny = ["--tiny", "--device", "cpu", "--steps", "1", "--rounds", "1", "--threads", "1"]
    script("speed_gpu_sweep.py", *tiny, "--batches", "2", "4", "--variants", "fp32", "bf16", "--json", str(out))
    r = json.loads(out.read_text())
    assert [(x["variant"], x["batch"]) for x in r["rows"]] == [("fp32", 2), ("bf16", 2), ("fp32", 4), ("bf16", 4)]
    assert all(x["ms_per_step"] > 0 and x["fraction_of_peak"] > 0 for x in r["rows"])
    assert r["rows"][0]["gflop_per_step"] * 2 == pytest.approx(r["rows"][2]["gflop_per_step"], rel=0.05)
    assert r["best"]["top_operators"] and "stopped" not in r
    script("speed_gpu_sweep.py", *tiny, "--batches", "2", "--budget-s", "0", "--json", str(out))
    r = json.loads(out.read_text())
    assert r["rows"] == [] and "budget" in r["stopped"]
