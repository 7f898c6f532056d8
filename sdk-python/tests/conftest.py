"""Native tests of the wasmcorn Python SDK (Debian's python3 + pytest).

    /usr/bin/python3 -m pytest sdk-python/tests
"""

import os
import sys

SDK = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(SDK)
if SDK not in sys.path:
    sys.path.insert(0, SDK)
