"""Print the committed benchmark results as a markdown table (for the README)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> int:
    rows = ["| suite | benchmark | device | ironwave | peer | peer time | ratio (peer/ours) | target |",
            "|---|---|---|---|---|---|---|---|"]
    for f in sorted(RESULTS.glob("*.json")):
        doc = json.loads(f.read_text())
        for e in doc["entries"]:
            tgt = e.get("target") or ""
            if e.get("target_met") is not None:
                tgt += " ✅" if e["target_met"] else " ❌"
            if "ours" in e:
                pt = e.get("peer_time")
                rows.append(f"| {doc['suite']} | {e['name']} | {doc['device']} | {e['ours']['median_s'] * 1e3:.3f} ms | {e['peer']} | "
                            f"{(pt['median_s'] * 1e3) if pt else float('nan'):.3f} ms | {e['ratio']:.2f}x | {tgt} |" if e.get("ratio") is not None else
                            f"| {doc['suite']} | {e['name']} | {doc['device']} | {e['ours']['median_s'] * 1e3:.3f} ms | {e['peer']} | - | - | {tgt} |")
            else:
                rows.append(f"| {doc['suite']} | {e['name']} | {doc['device']} | {e['value']:.4g} {e['unit']} | | | | {tgt} |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
