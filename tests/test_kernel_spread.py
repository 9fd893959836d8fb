"""scripts/kernel_spread.py: how a measured spread becomes a tolerance."""
import kernel_spread as ks


def test_a_tolerance_is_the_margin_times_the_largest_spread_or_the_floor():
    assert ks.tolerance([1e-4, 3e-4, 0.0], floor=1e-6) == ks.MARGIN * 3e-4
    assert ks.tolerance([0.0, 0.0], floor=1e-6) == 1e-6


def test_an_accuracy_of_a_few_pictures_gets_three_standard_errors_of_a_difference():
    assert ks.sampling_tolerance(0.5, 40) == round(3 * (2 * 0.25 / 40) ** 0.5, 3)
    assert ks.sampling_tolerance(1.0, 40) == ks.sampling_tolerance(0.9, 40) > 0   # 1.0 still moves
    assert ks.sampling_tolerance(0.5, 10) >= ks.NO_CHECK > ks.sampling_tolerance(0.5, 80)


def test_images_per_row_is_read_from_the_chapters_parameters():
    assert ks.images_per_row("ch7_ensembles_evaluation") == 40
    assert ks.images_per_row("ch9_neighbours") == 10


def test_the_kernel_paths_force_other_instructions_and_name_the_native_one():
    assert ks.PATHS["native"] == {}
    assert ks.PATHS["avx2"]["ATEN_CPU_CAPABILITY"] == "avx2" and ks.PATHS["default"]["ATEN_CPU_CAPABILITY"] == "default"


def test_make_test_forces_the_same_avx2_path_that_was_measured():
    """The Makefile's AVX2 pass and kernel_spread.py's "avx2" path are one environment."""
    from pathlib import Path
    line = next(x for x in (Path(__file__).parents[1] / "Makefile").read_text().splitlines()
                if x.startswith("AVX2 ="))
    env = dict(w.split("=", 1) for w in line.split("||")[1].split())
    assert env == ks.PATHS["avx2"]


def test_a_baseline_tolerance_is_raised_to_the_margin_times_the_range_and_never_lowered():
    assert ks.raised(0.15, [0.40, 0.42, 0.41]) == 0.15
    assert ks.raised(0.15, [0.40, 0.50]) == round(ks.MARGIN * 0.1 + 5e-5, 4)
