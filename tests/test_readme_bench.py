"""tools/readme_bench.py: the README's training-speed table is made from a bench train JSON."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import readme_bench  # noqa: E402


def test_table_has_a_row_per_model_and_the_input_bound_share():
    report = {"precisions": ["float32", "mixed_bfloat16"], "steps": 20,
              "machine": {"cpus": 2, "memory_gb": 23.4, "gpu": "no GPU", "tensorflow": "2.21"},
              "results": {"cnn_gap1": {"image_size": [48, 64], "batch_size": 64,
                                       "float32_graph": {"images_per_s": 190.4},
                                       "float32_xla": {"error": "XlaError: no"},
                                       "mixed_bfloat16_graph": {"images_per_s": 80.0},
                                       "pipeline": {"images_per_s": 180.0},
                                       "input_bound_share": 0.055},
                          "dcgan": {"image_size": [64, 64], "batch_size": 32,
                                    "float32_graph": {"images_per_s": 1234.0}}}}
    text = readme_bench.section(report, "python -m skinlib bench train")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows[0] == ("| `cnn_gap1` | 48x64 | 64 | 190 | error: XlaError | 80 | - | 180 | 6% |")
    assert rows[1] == "| `dcgan` | 64x64 | 32 | 1,234 | - | - | - | - | - |"
    assert text.startswith(readme_bench.START) and text.endswith(readme_bench.END)
    assert "2 CPU cores, 23.4 GB, no GPU" in text
