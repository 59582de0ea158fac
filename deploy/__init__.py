"""Deployment tooling: Glue columns generated into template.yaml and the Lambda artifact builder."""
