import fcntl
import os
import subprocess
from pathlib import Path

from backups import pg


def _expected_pipe_size() -> int:
    if os.getuid() == 0:
        return pg.PIPE_BYTES
    return min(pg.PIPE_BYTES, int(Path("/proc/sys/fs/pipe-max-size").read_text()))


def test_the_pipe_a_tool_writes_into_is_widened_and_carries_every_byte():
    with pg.Processes() as processes:
        proc = processes.start(["head", "-c", "3000000", "/dev/zero"], stdout=subprocess.PIPE)
        assert proc.stdout is not None
        size = fcntl.fcntl(proc.stdout.fileno(), fcntl.F_GETPIPE_SZ)
        data = proc.stdout.read()
        proc.stdout.close()
        processes.wait()
    assert size == _expected_pipe_size() > 64 * 1024
    assert len(data) == 3_000_000
