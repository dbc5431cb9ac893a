"""Build a prior file from size maps: ``python benchmarks/build_prior.py runs/*/size_map.json``.

Each size map (written by ``autotl search DATA --sizes …``) contributes one record per size and
strategy. The default output is the prior autotl ships (``autotl/priors/default.json``).
Prints a summary, then a final JSON line with the record count per dataset.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

from autotl.prior import FORMAT, records_from_size_map

DEFAULT_OUT = Path(__file__).parents[1] / "autotl" / "priors" / "default.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("size_maps", nargs="+", type=Path, help="size_map.json files")
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT,
                        help=f"prior file to write (default: {DEFAULT_OUT})")
    parser.add_argument("--source", default="autotl size map",
                        help="what produced the results (machine, date, settings)")
    args = parser.parse_args()
    records, counts = [], {}
    for path in args.size_maps:
        size_map = json.loads(path.read_text())
        found = records_from_size_map(size_map, source=f"{args.source}: {path}")
        records += found
        counts[size_map["dataset"]] = counts.get(size_map["dataset"], 0) + len(found)
        print(f"{path}: {len(found)} records ({size_map['dataset']}, {size_map['backbone']}, "
              f"sizes {[s['label'] for s in size_map['sizes']]})")
    prior = {
        "format": FORMAT,
        "description": f"built {datetime.date.today()} by benchmarks/build_prior.py from "
                       f"{len(args.size_maps)} size map(s)",
        "records": records,
    }
    args.out.write_text(json.dumps(prior, indent=1) + "\n")
    print(f"wrote {len(records)} records to {args.out}")
    print(json.dumps({"records": len(records), "by_dataset": counts}))


if __name__ == "__main__":
    main()
