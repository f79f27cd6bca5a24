"""The pages agents, QA reviewers and supervisors use: static HTML/CSS/JS served by the API app."""
