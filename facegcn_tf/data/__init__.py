"""Photo -> model inputs: loading, detection, alignment, landmarks, masks, datasets."""
