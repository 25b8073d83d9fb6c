# boot.py: runs first on every boot and must return quickly; the gateway itself starts in main.py.
import gc

gc.collect()
