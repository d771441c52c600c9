sed -i 's/^spec:/spec:\n  profile: staging/' cluster.yaml
