# A tree entry named ".." holding evil.yaml: the path "../evil.yaml". git
# itself refuses to check such a tree out, but a pushed object can hold it.
git add -A
blob=$(printf 'apiVersion: clusterctl/v1\nkind: Machine\nmetadata: {name: evil}\nspec: {address: 10.0.0.1}\n' | git hash-object -w --stdin)
evil=$(printf '100644 blob %s\tevil.yaml\n' "$blob" | git mktree)
base=$(git write-tree)
root=$( (git ls-tree "$base"; printf '040000 tree %s\t..\n' "$evil") | git mktree)
commit=$(git commit-tree "$root" -m "hostile tree")
git update-ref refs/heads/main "$commit"
