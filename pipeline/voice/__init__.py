"""Voice-driven motion: JoyVASA (audio -> LivePortrait motion)."""
