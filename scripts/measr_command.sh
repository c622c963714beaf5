# Sourced by the scripts here: sets $measr and $python, the measr command and a Python that has
# measr. $MEASR and $PYTHON when set; else the activated environment's; without one, the
# project's own .venv (in the current folder) where there is one.
measr=${MEASR:-measr}
python=${PYTHON:-python3}
if ! command -v "$measr" > /dev/null && [ -x .venv/bin/measr ]; then
  measr=.venv/bin/measr python=.venv/bin/python
fi
