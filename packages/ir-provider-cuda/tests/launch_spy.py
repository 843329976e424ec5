"""A stand-in for a ``@triton.jit`` kernel that records every launch, for tests that check
what reaches a kernel (one launch, the original storage and strides, no launch at all)."""

from __future__ import annotations

from typing import Any


class LaunchSpy:
    """Wraps a kernel; ``launches`` holds ``(grid, positional arguments)`` per launch."""

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        self.launches: list[tuple[Any, tuple[Any, ...]]] = []

    def __getitem__(self, grid: Any) -> Any:
        launch = self.kernel[grid]

        def run(*args: Any, **kwargs: Any) -> Any:
            self.launches.append((grid, args))
            return launch(*args, **kwargs)

        return run
