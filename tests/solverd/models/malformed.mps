NAME          BROKEN
ROWS
 N  OBJ
 L  C1
COLUMNS
    X         OBJ                  1   C1            notanumber
    Y         NOSUCHROW            2
RHS
    RHS       C1                  oops
BOUNDS
 XX BND       X                    4
ENDATA
