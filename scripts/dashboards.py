#!/usr/bin/env python3
"""PNGs of the Grafana dashboards' panels (charts/sluice/files/dashboards/,
linked from config/grafana/) drawn from a Prometheus's data. The chart
ships the dashboards in a ConfigMap (metrics.grafanaDashboards).

  scripts/dashboards.py render DATA.json OUT_DIR
      draws each dashboard's panels, laid out by their gridPos, from the
      range queries the e2e test saved (SLUICE_DASHBOARD_DATA=DATA.json
      cargo test -p sluice-e2e --test observability), one PNG per
      dashboard. Needs matplotlib: run it with the Python of
      `scripts/tools.sh install-render` (scripts/tools.sh path render-python).
"""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRAFANA = ROOT / "charts" / "sluice" / "files" / "dashboards"


def dashboards():
    return sorted(p for p in GRAFANA.glob("*.json"))


def render(data_path: str, out_dir: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from datetime import datetime, timezone

    data = json.loads(Path(data_path).read_text())
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for path in dashboards():
        board = json.loads(path.read_text())
        panels = board["panels"]
        rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
        unit_h = 0.42
        fig = plt.figure(figsize=(16, rows * unit_h + 1.2), facecolor="#111217")
        fig.suptitle(
            f"{board['title']}  ({data['variables_note']})",
            color="#d8d9da", fontsize=13, x=0.01, ha="left",
        )
        for panel in panels:
            g = panel["gridPos"]
            left, width = g["x"] / 24, g["w"] / 24
            bottom = 1 - (g["y"] + g["h"]) * unit_h / (rows * unit_h + 1.2) - 0.04
            height = g["h"] * unit_h / (rows * unit_h + 1.2)
            ax = fig.add_axes([left + 0.035, bottom + 0.03, width - 0.05, height - 0.07], facecolor="#181b1f")
            ax.set_title(panel["title"], color="#d8d9da", fontsize=10, loc="left")
            ax.tick_params(colors="#9fa7b3", labelsize=7)
            for spine in ax.spines.values():
                spine.set_color("#2f3238")
            defaults = panel.get("fieldConfig", {}).get("defaults", {})
            unit = defaults.get("unit", "short")
            mapping = {}
            for m in defaults.get("mappings", []):
                mapping.update({k: v.get("text", k) for k, v in m.get("options", {}).items()})
            drawn, quiet, last = 0, 0, None
            for target in panel["targets"]:
                key = f"{path.stem}/{panel['id']}/{target['refId']}"
                for series in data["panels"].get(key, []):
                    points = [(float(t), float(v)) for t, v in series["values"] if v not in ("NaN", "+Inf", "-Inf")]
                    if not points:
                        continue
                    xs = [datetime.fromtimestamp(t, tz=timezone.utc) for t, _ in points]
                    ys = [v * 100 if unit == "percentunit" else v for _, v in points]
                    label = target.get("legendFormat", "")
                    for k, v in series["metric"].items():
                        label = label.replace("{{" + k + "}}", v)
                    last = points[-1][1]
                    if all(y == 0 for y in ys):
                        # A series that stayed at zero: drawn, not listed.
                        ax.plot(xs, ys, color="#3d4048", linewidth=0.8)
                        quiet += 1
                    elif panel["type"] == "stat":
                        ax.step(xs, ys, where="post", label=label or None, linewidth=1.6)
                        drawn += 1
                    else:
                        # Few points (a histogram observed once): show them.
                        marker = "o" if len(points) < 4 else None
                        ax.plot(xs, ys, label=label or None, linewidth=1.3, marker=marker, markersize=4)
                        drawn += 1
            if panel["type"] == "stat" and last is not None:
                text = mapping.get(f"{last:g}", f"{last:g}")
                ax.text(0.98, 0.5, f"now: {text}", color="#d8d9da", fontsize=11, ha="right", va="center",
                        transform=ax.transAxes, bbox={"facecolor": "#181b1f", "edgecolor": "#2f3238"})
            if quiet:
                ax.text(0.99, 0.97, f"{quiet} series at 0", color="#9fa7b3", fontsize=6, ha="right", va="top",
                        transform=ax.transAxes)
            if unit == "percentunit":
                ax.set_ylabel("%", color="#9fa7b3", fontsize=7)
            elif unit in ("s",):
                ax.set_ylabel("seconds", color="#9fa7b3", fontsize=7)
            elif unit in ("ops", "reqps"):
                ax.set_ylabel("per second", color="#9fa7b3", fontsize=7)
            ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
            ax.grid(color="#2f3238", linewidth=0.5)
            if drawn:
                ax.legend(fontsize=6, loc="upper left", facecolor="#181b1f", labelcolor="#d8d9da", framealpha=0.7)
            elif not quiet:
                ax.text(0.5, 0.5, "no data", color="#9fa7b3", ha="center", va="center", transform=ax.transAxes)
        target = out / f"{path.stem}.png"
        fig.savefig(target, dpi=80, facecolor=fig.get_facecolor())
        plt.close(fig)
        print(target)


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "render":
        render(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
