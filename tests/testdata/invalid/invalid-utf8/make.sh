# Latin-1 bytes in a UTF-8 file: "caf\xe9".
mkdir -p services
printf 'apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: cafe}\nspec:\n  machines: [m1]\n  process: {command: ["/usr/bin/caf\351"]}\n' > services/cafe.yaml
