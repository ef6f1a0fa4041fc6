"""Files `labbridge init DIR` writes for a lab's own folder (lab/), read by labbridge/tools/lab_folder.py."""
