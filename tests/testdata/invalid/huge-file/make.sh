# A 20 MiB YAML file: refused before it is read.
mkdir -p services
python3 -c "import sys; sys.stdout.write('# ' + 'x'*(20*1024*1024) + '\n')" > services/huge.yaml
