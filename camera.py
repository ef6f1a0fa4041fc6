"""Camera, the demo's simulated scientific camera (NumPy arrays): it lives in the package, labbridge/demo/camera.py.

config.yml's `class: camera.Camera` finds it here, as in the proof of
concept; the installed package's demo names it `labbridge.demo.camera.Camera`.
Read (or copy) labbridge/demo/camera.py to write a module of your own.
"""

from labbridge.demo.camera import Camera

__all__ = ["Camera"]
