"""rbAmp driver (work in progress: only the clock seam exists so far)."""
