"""The sampling command: shards, seeds, resuming, torchrun, corrupt shards, a refused second recipe."""
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from cag_lib.generate import GenerateConfig, generate, initial_images, per_image_starts, starting_images
from cag_lib.sample import CorruptShardError, Shard, job_seed, main, parse_sets, plan_shards, read_shard
from cag_lib.zoo import load_bundle

# 2 classes x 4 images in shards of 2: four shards, each one sampler batch of 60 steps (about a second)
TINY = ["--bundle", "fmnist", "--classes", "Trouser", "Sneaker", "--per-class", "4", "--shard-size", "2",
        "--set", "steps=60", "final_masks=2", "--threads", "1", "--n-real", "300"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
ARRAYS = ("images", "inputs", "targets", "indices", "seeds")


def command(out, nproc=0):
    launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "cag_lib.sample"] if nproc else [sys.executable, "-m", "cag_lib.sample"])
    return launch + TINY + ["--out", str(out)]


def load(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One uninterrupted single-process run: the reference every other run must equal."""
    out = tmp_path_factory.mktemp("single")
    subprocess.run(command(out), env=ENV, check=True, capture_output=True, timeout=300)
    return out


def test_plan_covers_every_job_once_and_seeds_are_stable():
    shards = plan_shards([3, 0], per_class=5, shard_size=2)
    jobs = [(s.cls, i) for s in shards for i in s.indices]
    assert jobs == [(3, 0), (3, 1), (3, 2), (3, 3), (3, 4), (0, 0), (0, 1), (0, 2), (0, 3), (0, 4)]
    assert [s.name for s in shards[:3]] == ["c0003_i000000", "c0003_i000002", "c0003_i000004"]
    seeds = {job_seed(0, "image", c, i) for c, i in jobs}
    assert len(seeds) == len(jobs) and job_seed(0, "image", 3, 1) == job_seed(0, "image", 3, 1)
    assert job_seed(1, "image", 3, 1) != job_seed(0, "image", 3, 1)
    assert all(0 <= s < 2 ** 62 for s in seeds)


def test_each_start_is_its_own_seeds_alone():
    fmnist = load_bundle("fmnist")
    for cfg in (GenerateConfig(resolutions=(8,)), GenerateConfig(resolutions=(8,), start="class gaussian")):
        a = per_image_starts(fmnist, cfg, [1, 2, 3], [5, 6, 7])
        b = per_image_starts(fmnist, cfg, [3, 2], [7, 6])
        assert torch.equal(a[2], b[0]) and torch.equal(a[1], b[1])     # an image's start is its seed's alone
        assert torch.equal(a[:1], starting_images(fmnist, cfg, torch.tensor([1]), torch.Generator().manual_seed(5)))
    assert not torch.equal(a[:1], per_image_starts(fmnist, cfg, [2], [5]))   # the class's Gaussian


def test_parse_sets():
    assert parse_sets(["steps=10", "resolutions=32", "sampler=mala", "resolutions=(16, 32)"]) == \
        {"steps": 10, "resolutions": (16, 32), "sampler": "mala"}
    assert parse_sets(["resolutions=32"]) == {"resolutions": (32,)}
    with pytest.raises(ValueError, match="GenerateConfig field: steps"):
        parse_sets(["stpes=10"])
    with pytest.raises(ValueError, match="use --seed"):
        parse_sets(["seed=3"])


def test_single_run_writes_samples_grid_metrics(single):
    s = load(single / "samples.npz")
    assert s["images"].dtype == np.uint8 and s["images"].shape == (8, 1, 32, 32)
    assert s["inputs"].shape == (8, 1, 32, 32) and str(s["shown"]) == "g(x)"
    assert s["targets"].tolist() == [1] * 4 + [7] * 4 and s["indices"].tolist() == [0, 1, 2, 3] * 2
    assert len(set(s["seeds"].tolist())) == 8
    assert not np.array_equal(s["images"][0], s["images"][1])       # different seeds, different images
    assert sorted(p.name for p in (single / "shards").iterdir()) == [
        "c0001_i000000.npz", "c0001_i000002.npz", "c0007_i000000.npz", "c0007_i000002.npz"]
    import json
    m = json.loads((single / "metrics.json").read_text())
    for k in ("judge_acc", "fd", "kid", "kid_std", "diversity", "seconds_per_image"):
        assert np.isfinite(m[k]), k
    assert m["n"] == 8 and m["n_real"] == 300
    assert (single / "grid.png").stat().st_size > 1000


def test_torchrun_interrupted_and_resumed_equals_the_single_run(single, tmp_path):
    out = tmp_path / "dist"
    proc = subprocess.Popen(command(out, nproc=2), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    t0 = time.time()
    while not list((out / "shards").glob("c*.npz")) and proc.poll() is None and time.time() - t0 < 240:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGTERM)                 # what a scheduler (or Ctrl-C) does to the group
    log = proc.communicate(timeout=120)[0].decode()
    done = sorted(p.name for p in (out / "shards").glob("c*.npz"))
    assert 1 <= len(done) < 4, log                      # stopped part-way
    assert not list((out / "shards").glob(".*")), "a temporary file was left behind"
    assert not (out / "samples.npz").exists()
    before = {n: (out / "shards" / n).stat().st_mtime_ns for n in done}
    res = subprocess.run(command(out, nproc=2), env=ENV, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{len(done)} of 4 shards done" in res.stdout
    assert all((out / "shards" / n).stat().st_mtime_ns == t for n, t in before.items())  # kept, not redone
    a, b = load(single / "samples.npz"), load(out / "samples.npz")
    for k in ARRAYS:
        assert np.array_equal(a[k], b[k]), k            # bit for bit


def test_corrupt_shard_is_redone(single, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(single, out)
    bad = out / "shards" / "c0007_i000000.npz"
    bad.write_bytes(bad.read_bytes()[:500])             # truncated, as a full disk leaves it
    main(TINY + ["--out", str(out)])
    said = capsys.readouterr().out
    assert "corrupt shard: " in said and "c0007_i000000.npz cannot be read" in said and "3 of 4 shards done" in said
    a, b = load(single / "samples.npz"), load(out / "samples.npz")
    assert all(np.array_equal(a[k], b[k]) for k in ARRAYS)


def test_read_shard_checks_the_jobs(single):
    path = single / "shards" / "c0001_i000000.npz"
    run_id = str(load(path)["run_id"])
    assert read_shard(path, Shard(1, 0, 2), run_id)["images"].shape[0] == 2
    with pytest.raises(CorruptShardError, match="does not hold the jobs"):
        read_shard(path, Shard(1, 2, 4), run_id)
    with pytest.raises(CorruptShardError, match="another run"):
        read_shard(path, Shard(1, 0, 2), "0" * 16)


def test_another_recipe_in_the_same_folder_is_refused(single, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(single, out)
    args = [a if a != "steps=60" else "steps=61" for a in TINY] + ["--out", str(out), "--recipe", "eq1"]
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "holds another run; it differs in: recipe" in err and "config" in err
    assert "Use another --out" in err


def test_bad_arguments_are_clear_errors(tmp_path, capsys):
    for extra, said in ((["--classes", "Sneakers"], "unknown class 'Sneakers'"),
                        (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "gpu"],
                         "--device"),
                        (["--per-class", "0"], "at least 1"),
                        (["--set", "lr"], "FIELD=VALUE")):
        with pytest.raises(SystemExit) as e:
            main(["--bundle", "fmnist", "--out", str(tmp_path / "x")] + extra)
        assert e.value.code == 2 and said in capsys.readouterr().err


def test_imagenet_preset_through_the_command(tmp_path, capsys):
    """The paper's preset and bundle, randomly initialised (nothing can be downloaded here), with
    eq. 6's statistics measured from a folder in ImageNet's train layout (--stats-folder)."""
    from PIL import Image
    real = tmp_path / "train"
    for wnid in ("n01443537", "n01440764"):                             # goldfish, tench
        (real / wnid).mkdir(parents=True)
        for k in range(3):
            Image.fromarray((torch.rand(40, 48, 3) * 255).byte().numpy()).save(real / wnid / f"{k}.JPEG")
    out = tmp_path / "in"
    main(["--bundle", "imagenet", "--random-weights", "--classes", "goldfish", "--per-class", "2",
          "--stats-folder", str(real),
          "--set", "steps=1", "resolutions=32", "final_masks=1", "--threads", "2", "--out", str(out)])
    s = load(out / "samples.npz")
    assert s["images"].shape == (2, 3, 256, 256) and s["targets"].tolist() == [1, 1]
    import json
    run = json.loads((out / "run.json").read_text())
    assert run["run"]["recipe"] == "imagenet" and run["run"]["config"]["resolutions"] == [32]
    assert run["run"]["config"]["distribution_weight"] == 1.0 and run["run"]["config"]["steps"] == 1
    assert run["run"]["weights"]["inception_v3.tv_in1k"].startswith("random")
    assert run["run"]["weights"]["class_stats"] == str(real.resolve())
    # a class the folder has no images of is named, before anything is drawn
    with pytest.raises(SystemExit) as e:
        main(["--bundle", "imagenet", "--random-weights", "--classes", "volcano", "--stats-folder", str(real),
              "--set", "steps=1", "resolutions=32", "--out", str(tmp_path / "v")])
    assert e.value.code == 2 and "0 image(s) of class n09472597 (volcano)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--bundle", "fmnist", "--stats-folder", str(real), "--out", str(tmp_path / "f")])
    assert e.value.code == 2 and "--stats-folder is for --bundle imagenet" in capsys.readouterr().err


def test_shapes_prompts_through_the_command(tmp_path):
    out = tmp_path / "t2i"
    main(["--bundle", "shapes-text", "--prompts", "a red star on a blue background", "--per-class", "2",
          "--set", "steps=3", "final_masks=1", "--threads", "2", "--out", str(out)])
    import json
    m = json.loads((out / "metrics.json").read_text())
    assert {"shape_acc", "colour_acc", "background_acc", "shape+colour_acc"} <= set(m) and m["n"] == 2
    assert json.loads((out / "run.json").read_text())["run"]["classes"] == ["red star on a blue background"]


def test_generate_init_is_the_start(tmp_path):
    """generate(init=...) starts from the given images: the same as its own seeded noise when equal."""
    b = load_bundle("fmnist")
    cfg = GenerateConfig(steps=3, resolutions=(16, 32), distribution_weight=0, progress=False)
    own = generate(b, [1, 2], cfg)
    x0 = initial_images(2, 1, 16, cfg.init_std, torch.Generator().manual_seed(cfg.seed))
    given = generate(b, [1, 2], cfg, init=x0)
    assert torch.equal(own.images, given.images)
    other = generate(b, [1, 2], cfg, init=torch.zeros(2, 1, 32, 32))
    assert not torch.equal(own.images, other.images)
    with pytest.raises(ValueError, match="one image per target"):
        generate(b, [1, 2], cfg, init=torch.zeros(3, 1, 32, 32))


def test_the_zoo_gan_through_the_command(tmp_path):
    out = tmp_path / "gan"
    main(["--bundle", "fmnist", "--recipe", "GAN", "--classes", "Bag", "Trouser", "--per-class", "3",
          "--shard-size", "2", "--threads", "1", "--n-real", "200", "--out", str(out)])
    s = load(out / "samples.npz")
    assert s["images"].shape == (6, 1, 32, 32) and s["targets"].tolist() == [8, 8, 8, 1, 1, 1]
    assert "inputs" not in s and int(s["evaluations"]) == 1
    again = tmp_path / "again"
    main(["--bundle", "fmnist", "--recipe", "GAN", "--classes", "Bag", "Trouser", "--per-class", "3",
          "--shard-size", "3", "--threads", "1", "--n-real", "200", "--out", str(again)])
    assert np.array_equal(load(again / "samples.npz")["images"], s["images"])   # per-image seeds: any sharding
