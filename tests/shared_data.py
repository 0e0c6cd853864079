"""Where the real third-party files of ../shared/data/ are (never copied into the project)."""

from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SAMPLES = SHARED_DATA / "samples"
