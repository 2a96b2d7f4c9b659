"""Tables and a bar chart from a pytest-benchmark JSON file (``fastgd report``).

The input is what ``pytest bench --benchmark-only --benchmark-json FILE`` writes: a list of
benchmarks, each with its ``group``, its ``params`` and its ``stats`` (times in seconds).
Cases are named by their ``backend`` parameter (kernel suites) or their ``case`` parameter
(solver suites). Each group becomes one table, fastest case first:

- kernel groups (``loss_grad|...``): the median, the GB/s of X when the benchmark recorded
  ``bytes_of_X``, the fraction of the streaming-read yardstick a case reaches
  (stream-read median / case median: 1.0 runs at the speed of a plain read of X; a case
  that recorded another ``yardstick``, such as the cuda backend's ``gpu-read``, is
  divided into that one's median) and the speedup over the NumPy reference (numpy median / case median);
- solver groups (``solver|...``): the median, the speedup over scikit-learn
  (sklearn-lbfgs median / case median) and the relative objective gap to the reference
  when the benchmark recorded it;
- any other group: the median.

The chart has one horizontal bar subplot per group (in two columns past three groups): the
fraction of the read for kernel groups, the speedup for solver groups, the median for the
others.
"""

import json
import math
from dataclasses import dataclass, field

KERNEL_PREFIX = "loss_grad|"
SOLVER_PREFIX = "solver|"
READ_CASE = "stream-read"
NUMPY_CASE = "numpy"
SOLVER_BASELINE = "sklearn-lbfgs"
NO_GROUP = "(no group)"


@dataclass
class Row:
    """One benchmark case of a group; ratios are None where the group lacks their baseline."""

    case: str
    median: float  # seconds
    gb_per_s: float | None = None
    of_read: float | None = None  # kernel groups: yardstick median / this median
    vs_numpy: float | None = None  # kernel groups: numpy median / this median
    speedup: float | None = None  # solver groups: sklearn-lbfgs median / this median
    relative_gap: float | None = None  # solver groups: (objective - reference) / |reference|
    yardstick: str = READ_CASE  # kernel groups: the read this case is compared with


@dataclass
class Group:
    name: str
    kind: str  # "kernel", "solver" or "other"
    rows: list[Row] = field(default_factory=list)

    def row(self, case):
        """The row of ``case``; KeyError if the group has none."""
        for row in self.rows:
            if row.case == case:
                return row
        raise KeyError(f"no case {case!r} in group {self.name!r}")


def load(path):
    """The parsed JSON file; ValueError if it is not a pytest-benchmark result."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise ValueError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list)")
    return data


def case_name(bench):
    """The case a benchmark measures: its backend or case parameter, else its parameter id."""
    params = bench.get("params") or {}
    for key in ("backend", "case"):
        if isinstance(params.get(key), str):
            return params[key]
    extra = bench.get("extra_info") or {}
    if isinstance(extra.get("case"), str):
        return extra["case"]
    return bench.get("param") or bench.get("name", "?")


def group_kind(name):
    if name.startswith(KERNEL_PREFIX):
        return "kernel"
    if name.startswith(SOLVER_PREFIX):
        return "solver"
    return "other"


def _ratio(numerator, denominator):
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def summarize(data):
    """Groups (in the file's order) with their rows (fastest first) and ratios."""
    groups = {}
    for bench in data["benchmarks"]:
        name = bench.get("group") or NO_GROUP
        group = groups.setdefault(name, Group(name, group_kind(name)))
        extra = bench.get("extra_info") or {}
        median = float(bench["stats"]["median"])
        row = Row(case_name(bench), median)
        if isinstance(extra.get("bytes_of_X"), (int, float)) and median > 0:
            row.gb_per_s = extra["bytes_of_X"] / median / 1e9
        if isinstance(extra.get("yardstick"), str):
            row.yardstick = extra["yardstick"]
        if isinstance(extra.get("relative_gap"), (int, float)):
            row.relative_gap = float(extra["relative_gap"])
        group.rows.append(row)
    for group in groups.values():
        group.rows.sort(key=lambda r: r.median)
        medians = {}
        for row in group.rows:
            medians.setdefault(row.case, row.median)  # the first (fastest) one per case name
        for row in group.rows:
            if group.kind == "kernel":
                row.of_read = _ratio(medians.get(row.yardstick), row.median)
                row.vs_numpy = _ratio(medians.get(NUMPY_CASE), row.median)
            elif group.kind == "solver":
                row.speedup = _ratio(medians.get(SOLVER_BASELINE), row.median)
    return list(groups.values())


def _ms(seconds):
    ms = seconds * 1e3
    return f"{ms:,.2f}" if ms >= 1 else f"{ms:.4f}"


def _fixed(value, suffix=""):
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}{suffix}"


def _gap(value):
    return "n/a" if value is None else f"{value:.1e}"


def _read_label(group):
    """The read-fraction column's name: "stream-read" unless some case has its own yardstick."""
    sticks = sorted({r.yardstick for r in group.rows if r.case != r.yardstick} | {READ_CASE})
    return READ_CASE if sticks == [READ_CASE] else "read (" + ", ".join(sticks) + ")"


def _columns(group):
    """(header, alignment, cell function) per column of the group's table."""
    columns = [("case", ":--", lambda r: r.case), ("median [ms]", "--:", lambda r: _ms(r.median))]
    if group.kind == "kernel":
        if any(r.gb_per_s is not None for r in group.rows):
            columns.append(("GB/s of X", "--:", lambda r: _fixed(r.gb_per_s)))
        columns.append((f"{_read_label(group)} / case", "--:", lambda r: _fixed(r.of_read)))
        columns.append((f"{NUMPY_CASE} / case", "--:", lambda r: _fixed(r.vs_numpy, "x")))
    elif group.kind == "solver":
        columns.append((f"{SOLVER_BASELINE} / case", "--:", lambda r: _fixed(r.speedup, "x")))
        if any(r.relative_gap is not None for r in group.rows):
            columns.append(("objective gap", "--:", lambda r: _gap(r.relative_gap)))
    return columns


def machine_line(data):
    """One line on where the benchmarks ran, from pytest-benchmark's machine and commit info."""
    machine = data.get("machine_info") or {}
    cpu = machine.get("cpu") or {}
    parts = []
    if cpu.get("brand_raw"):
        parts.append(cpu["brand_raw"])
    if cpu.get("count"):
        parts.append(f"{cpu['count']} CPUs")
    if machine.get("python_version"):
        parts.append(f"Python {machine['python_version']}")
    commit = data.get("commit_info") or {}
    if commit.get("id"):
        parts.append(f"commit {commit['id'][:10]}{' (dirty)' if commit.get('dirty') else ''}")
    if data.get("datetime"):
        parts.append(str(data["datetime"]))
    return ", ".join(parts)


def markdown(groups, header=""):
    """A markdown table per group, under a ``###`` heading naming the group."""
    lines = []
    if header:
        lines += [header, ""]
    for group in groups:
        columns = _columns(group)
        lines.append(f"### {group.name}")
        lines.append("")
        lines.append("| " + " | ".join(c[0] for c in columns) + " |")
        lines.append("|" + "|".join(c[1] for c in columns) + "|")
        for row in group.rows:
            lines.append("| " + " | ".join(c[2](row) for c in columns) + " |")
        lines.append("")
    return "\n".join(lines)


def _bar_values(group):
    """(x-axis label, values, reference line at x or None) for the group's subplot."""
    if group.kind == "kernel":
        label = _read_label(group)
        return f"fraction of {label} ({label} / case)", [r.of_read for r in group.rows], 1.0
    if group.kind == "solver":
        return f"speedup over {SOLVER_BASELINE}", [r.speedup for r in group.rows], 1.0
    return "median [ms]", [r.median * 1e3 for r in group.rows], None


def plot(groups, path):
    """Write the bar chart to ``path`` (PNG) with matplotlib's Agg canvas.

    Raises ImportError when matplotlib is not installed.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = 1 if len(groups) <= 3 else 2  # a full run has a dozen or more groups
    nrows = math.ceil(len(groups) / ncols)
    height = 1.3 + 0.35 * max(len(group.rows) for group in groups)
    fig = Figure(figsize=(8 * ncols, height * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(groups) :]:
        ax.set_visible(False)
    for ax, group in zip(axes[: len(groups)], groups, strict=True):
        label, values, reference = _bar_values(group)
        values = [v if v is not None and math.isfinite(v) else 0.0 for v in values]
        positions = range(len(group.rows))
        bars = ax.barh(positions, values, color="tab:blue" if group.kind == "kernel" else "tab:green")
        ax.set_yticks(list(positions), [r.case for r in group.rows])
        ax.invert_yaxis()  # fastest case on top, as in the table
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=3, fontsize=8)
        if reference is not None:
            ax.axvline(reference, color="0.4", lw=1, ls="--")
        ax.set_xlim(0, max([*values, reference or 0.0]) * 1.18 or 1.0)
        ax.set_xlabel(label, fontsize=9)
        ax.set_title(group.name, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def report(path, *, png=None, md=None, out=print, err=print):
    """Print the tables of a benchmark JSON file; write them to ``md`` and the chart to ``png``.

    Returns the groups. Without matplotlib the chart is skipped with a message on ``err``.
    """
    data = load(path)
    groups = summarize(data)
    if not groups:
        raise ValueError(f"{path}: the file holds no benchmarks")
    header = machine_line(data)
    text = markdown(groups, header=f"Benchmarks from `{path}`" + (f" ({header})" if header else ""))
    out(text)
    if md:
        with open(md, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        err(f"tables written to {md}")
    if png:
        try:
            plot(groups, png)
        except ImportError:
            err(f"no chart written to {png}: matplotlib is not installed (pip install fastgd[plot])")
        else:
            err(f"chart written to {png}")
    return groups
