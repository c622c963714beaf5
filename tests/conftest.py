"""The tests run the commands on PyTorch whatever runtimes are installed (the command line's
`auto` backend would pick OpenVINO where its extra is): results and sentences stay the same on
every machine. The backend tests ask for their runtime, or unset this, themselves."""

from __future__ import annotations

import os

os.environ["MEASR_BACKEND"] = "torch"
