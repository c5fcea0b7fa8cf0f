// The Go cgo example of embedding readyns (see main.go); no dependencies beyond the C library.
module readyns.example/resolve

go 1.19
