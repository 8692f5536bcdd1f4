"""Engine test fixtures: a private jackd (dummy driver, 48 kHz / 128 frames) per test module."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid

import pytest


@pytest.fixture(scope="module")
def jack_server():
    """Start ``jackd -n NAME -d dummy -r 48000 -p 128``; yield NAME; stop it by its PID.

    Skips when jackd is missing, unless IRONWAVE_REQUIRE_JACK=1 (CI), then fails.
    """
    required = os.environ.get("IRONWAVE_REQUIRE_JACK", "0") == "1"
    jackd, jwait = shutil.which("jackd"), shutil.which("jack_wait")
    if not jackd or not jwait:
        msg = "jackd/jack_wait not installed (apt-get install jackd2)"
        if required:
            pytest.fail(msg + " but IRONWAVE_REQUIRE_JACK=1")
        pytest.skip(msg)
    try:
        import jack  # noqa: F401
    except (ImportError, OSError) as e:
        if required:
            pytest.fail(f"JACK-Client not importable: {e}")
        pytest.skip(f"JACK-Client not importable: {e}")
    name = f"ironwave-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    log = open(os.devnull, "w")
    proc = subprocess.Popen([jackd, "-n", name, "-d", "dummy", "-r", "48000", "-p", "128"], stdout=log, stderr=log)
    old = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["JACK_NO_START_SERVER"] = "1"
    try:
        rc = subprocess.run([jwait, "-s", name, "-w", "-t", "10"], capture_output=True, timeout=20).returncode
        if rc != 0 or proc.poll() is not None:
            msg = f"jackd did not start (jack_wait rc {rc}, jackd rc {proc.poll()})"
            if required:
                pytest.fail(msg)
            pytest.skip(msg)
        yield name
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        time.sleep(0.1)
