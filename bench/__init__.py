"""Benchmarks for cos-superres: `make bench` (= `python -m bench`) writes .superres/bench/results.json and .md;
`python -m bench NAME [--quick]` runs one benchmark (e.g. `python -m bench vs_moto --quick`);
`make bench-readme` (`--update-readme`) publishes a full run to bench/results.json, bench/results.md and README.md.

Every figure with a goal is measured side by side in one run (interleaved A/B repetitions, medians), so a noisy,
shared machine shifts both sides alike. Modules, one per benchmark:

    cold_start    importing the handler module vs importing qcloud_cos alone (fresh interpreters)
    client_cpu    client-side CPU per record: the real pipeline vs a bare ci_image_process call
    warm_rss      peak RSS of a warm function instance over 100 records
    local_sr      SPAN vs bicubic quality, seconds per megapixel, peak RSS at 1080p, the compute floor
    cpu_peak      the CPU's theoretical fp32 peak from /proc/cpuinfo (the floor's denominator)
    backfill_rate `superres backfill` submit rate against the stand-in's bicubic engine
    backfill_plan diff-based backfill planning rate and peak RSS over 100,000 synthetic listed objects
    backfill_submit `superres backfill --deployed` submit rate through the local SCF API
    vs_moto       the stand-in against moto_server per object operation (PUT, GET, HEAD, LIST, DELETE; 8 MB PUT
                  and GET), peak RSS, and the stand-in's server CPU per 1,000 requests
"""

from __future__ import annotations

from .report import Goal, Row

__all__ = ["Goal", "Row"]
