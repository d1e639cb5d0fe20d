import json
import subprocess
import sys

import pyvrel
from pyvrel.cli import main


def test_version_and_info(capsys):
    out = subprocess.run([sys.executable, "-m", "pyvrel", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"pyvrel {pyvrel.__version__}"
    assert main(["info"]) == 0
    assert "C++ extension :" in capsys.readouterr().out
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["cpu"]["available"] and info["version"] == pyvrel.__version__


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: pyvrel" in capsys.readouterr().out
