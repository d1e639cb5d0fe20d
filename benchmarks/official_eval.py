"""The official evaluation loop as a command (``pyvrel.eval.reference``: plain-Python loading and
scoring, no torch), to time ``pyvrel eval`` against it process for process (benchmarks/README.md):

    python benchmarks/official_eval.py GT_DIR PRED.json
"""

import json
import sys

from pyvrel.eval.reference import evaluate_reference, load_reference

if __name__ == "__main__":
    print(json.dumps(evaluate_reference(*load_reference(sys.argv[1], sys.argv[2]))))
