rm cluster.yaml
