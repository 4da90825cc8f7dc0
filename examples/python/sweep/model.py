"""A damped, driven pendulum: the model the sweep varies (an extra module shipped with the job)."""

import numpy as np


def simulate(drive: float, damping: float, steps: int = 20_000, dt: float = 0.01) -> np.ndarray:
    """Angle and angular velocity over time (semi-implicit Euler), from rest."""
    theta, omega = 0.2, 0.0
    out = np.empty((steps, 2))
    t = 0.0
    for i in range(steps):
        omega += dt * (-damping * omega - np.sin(theta) + drive * np.cos(2.0 / 3.0 * t))
        theta += dt * omega
        t += dt
        out[i] = theta, omega
    return out
