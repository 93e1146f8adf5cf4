"""``torchrun --nproc_per_node=N -m explorer.training.launch CONFIG.json [RUN_DIR]``: one run
from a saved :class:`~explorer.training.config.TrainConfig` (``RUN_DIR``: resume it), in every
process torchrun starts. The app's job queue trains on several GPUs this way; the CLI's own
``torchrun ... -m explorer train`` is the same run from command-line flags.

Exit status: 0 done, 2 an error (its one line on stderr), 130 stopped (SIGINT or SIGTERM: the
run is resumable and says so in its status.json).
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from explorer.errors import ExplorerError, Stopped
from explorer.training.config import TrainConfig


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # the trainer turns it into a resumable "stopped" run


def stop_on_sigterm() -> None:
    """SIGTERM stops a run like Ctrl-C: resumable, and said so in its status.json."""
    signal.signal(signal.SIGTERM, _interrupt)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    from explorer.training.trainer import train

    stop_on_sigterm()
    try:
        cfg = TrainConfig(**json.loads(Path(args[0]).read_text()))
        train(cfg, resume=args[1] if len(args) > 1 else None)
    except Stopped as e:
        print(f"stopped: {e}", file=sys.stderr)
        return 130
    except (ExplorerError, OSError, ValueError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
