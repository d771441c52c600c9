sed -i 's/^spec:/spec:\n  profile: dev/' cluster.yaml
