"""Architecture rules that are easy to break by accident."""

import subprocess
import sys


def test_runtime_library_imports_without_the_web_stack():
    code = (
        "import sys, flautim.fl, flautim.fl.events\n"
        "bad = [m for m in ('flask', 'sqlalchemy', 'redis', 'rq', 'flautim.web') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_web_app_does_not_import_torch():
    """The web process stays light: torch is only imported by runs and inspections."""
    code = (
        "import sys\n"
        "from flautim.web import create_app\n"
        "from flautim.config import Config\n"
        "import tempfile\n"
        "create_app(Config.from_env(environ={}, DATA_DIR=tempfile.mkdtemp(), SANDBOX_BACKEND='local', "
        "REDIS_URL='redis://127.0.0.1:6379/15'))\n"
        "assert 'torch' not in sys.modules, 'torch imported by the web app'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_code_is_ruff_clean():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--output-format", "concise", str(root)],
        capture_output=True,
        text=True,
        cwd=root,
    )
    assert result.returncode == 0, result.stdout + result.stderr
