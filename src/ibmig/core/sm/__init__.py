"""The subnet manager: discovery, LID assignment, routing engines, LFT programming."""
