"""The batch run's progress line (pipeline.progress, issue #13)."""

import io

from facegcn_tf.pipeline.progress import Progress


def test_plain_lines_name_face_stage_counts_and_eta():
  stream = io.StringIO()
  progress = Progress(total=3, stream=stream)
  assert not progress.terminal                       # a StringIO is no terminal
  progress.stage(["a"], "prepare")
  progress.stage(["a"], "fit")
  assert progress.eta() is None
  progress.face(ok=True)
  progress.photo_settled()
  progress.stage(["b_face0", "b_face1"], "refine")
  lines = stream.getvalue().splitlines()
  assert lines[0].startswith("progress: 0/3 photos settled | a: prepare | 0 done, 0 failed | ")
  assert lines[0].endswith("ETA ?")
  assert lines[1].split(" | ")[1] == "a: fit"
  assert lines[2].startswith("progress: 1/3 photos settled | b_face0, b_face1: refine | "
                             "1 done, 0 failed | ")
  assert "ETA ?" not in lines[2]


def test_eta_is_mean_time_per_photo_times_photos_left_counting_down():
  progress = Progress(total=4, enabled=False)
  progress.start -= 30.0                              # 30 s ago
  progress.photo_settled()                            # one photo in ~30 s: 3 left
  assert abs(progress.eta() - 90.0) < 1.0
  progress._last_settled -= 10.0   # settled 10 s ago, after 20 s: 3 x 20 s left, 10 spent
  assert abs(progress.eta() - 50.0) < 1.0
  progress.settled = 4
  assert progress.eta() == 0.0


def test_disabled_progress_writes_nothing():
  stream = io.StringIO()
  progress = Progress(total=2, enabled=False, stream=stream)
  progress.stage(["a"], "fit")
  progress.face(ok=False)
  progress.photo_settled()
  progress.close()
  assert stream.getvalue() == "" and progress.failed == 1


def test_terminal_mode_draws_a_bar():
  stream = io.StringIO()
  progress = Progress(total=2, stream=stream, terminal=True)
  progress.stage(["a"], "refine")
  progress.face(ok=True)
  progress.photo_settled()
  progress.close()
  text = stream.getvalue()
  assert "a: refine" in text and "1/2" in text and "\n" in text
