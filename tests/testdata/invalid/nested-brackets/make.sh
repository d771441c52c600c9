# 200,000 nested flow sequences: yaml-cpp would recurse once per level.
mkdir -p services
python3 -c "import sys; sys.stdout.write('apiVersion: clusterctl/v1\nkind: Service\nmetadata: {name: deep}\nspec: ' + '['*200000 + ']'*200000 + '\n')" > services/deep.yaml
