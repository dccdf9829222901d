"""Wire codecs: bytes <-> frozen dataclasses, no state, no time.

Layouts follow the InfiniBand Architecture Specification (IBA) Volume 1, Release
1.3; each module cites the sections it implements. Malformed bytes and values that
do not fit their field raise `WireError` and nothing else.
"""

from ibmig.errors import WireError

__all__ = ["WireError"]
