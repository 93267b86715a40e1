"""tools/readme_bench.py: the README's training-speed table is made from a bench train JSON."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import readme_bench  # noqa: E402


def test_table_has_a_row_per_model_and_the_input_bound_share():
    report = {"precisions": ["float32", "mixed_bfloat16"], "steps": 20, "repeats": 3,
              "machine": {"cpus": 2, "memory_gb": 23.4, "gpu": "no GPU", "tensorflow": "2.21"},
              "results": {"cnn_gap1": {"image_size": [48, 64], "batch_size": 64,
                                       "float32_graph": {"images_per_s": 190.4},
                                       "float32_xla": {"error": "XlaError: no"},
                                       "mixed_bfloat16_graph": {"images_per_s": 80.0},
                                       "memory": {"images_per_s": 191.0,
                                                  "images_per_s_range": [185.2, 199.9]},
                                       "pipeline": {"images_per_s": 180.0,
                                                    "images_per_s_range": [150.0, 181.0]},
                                       "input_bound_share": 0.055},
                          "dcgan": {"image_size": [64, 64], "batch_size": 32,
                                    "float32_graph": {"images_per_s": 1234.0}}}}
    text = readme_bench.section(report, "python -m skinlib bench train")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows[0] == ("| `cnn_gap1` | 48x64 | 64 | 190 | error: XlaError | 80 | - | "
                       "191 (185-200) | 180 (150-181) | 6% |")
    assert rows[1] == "| `dcgan` | 64x64 | 32 | 1,234 | - | - | - | - | - | - |"
    assert "median training images/s of 3 timed runs of 20 steps" in text
    assert text.startswith(readme_bench.START) and text.endswith(readme_bench.END)
    assert "2 CPU cores, 23.4 GB, no GPU" in text


def test_pipeline_table_has_a_row_per_way_a_column_per_size_and_the_goal_ratios():
    def run(size, rate):
        return {"image_size": size, "n_images": 4000, "batch_size": 32, "epochs": 3,
                "results": {"imagedatagenerator": {"images_per_s": 100.0,
                                                   "images_per_s_range": [90.0, 110.0],
                                                   "work": "the seed way"},
                            "skinlib_uint8": {"images_per_s": rate,
                                              "images_per_s_range": [rate - 1, rate + 1],
                                              "work": "uint8 feed"}},
                "ratios": {"skinlib_uint8 / imagedatagenerator": rate / 100,
                           "cache_build / decode_limit": None}}
    report = {"machine": {"cpus": 2, "memory_gb": 23.4, "gpu": "no GPU", "tensorflow": "2.21"},
              "runs": [run([48, 64], 5000.0), run([96, 128], 2500.0)]}
    text = readme_bench.pipeline_section(report, "python -m skinlib bench pipeline")
    assert text.startswith(readme_bench.PIPE_START) and text.endswith(readme_bench.PIPE_END)
    assert "| way (work done) | 48x64 | 96x128 |" in text
    assert "| `skinlib_uint8`: uint8 feed | 5,000 (4,999-5,001) | 2,500 (2,499-2,501) |" in text
    assert ("- feeding path (cached uint8 batches) against the seed way's ImageDataGenerator: "
            "50.00x, 25.00x") in text
    assert "cold epoch" not in text  # a ratio the run could not measure is left out
