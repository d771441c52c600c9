# A symbolic link that would make the loader read a file outside the tree.
mkdir -p services
ln -s /etc/passwd services/passwd.yaml
