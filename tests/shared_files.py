"""Where the tests find the team's shared topology files.

The files of ../shared/topologies are copied into tests/data/topologies so that a
clean clone runs the same tests wherever it is checked out.
"""

from pathlib import Path

TOPOLOGIES = Path(__file__).resolve().parent / "data" / "topologies"
