"""cos-superres tooling: the local COS + CI stand-in, the SCF runner, replay, backfill, layer build."""

__version__ = "0.1.0"
