NAME          UNBNDLP
ROWS
 N  OBJ
 L  diff
COLUMNS
    x         OBJ                 -1
    x         diff                 1
    y         OBJ                 -1
    y         diff                -1
RHS
    RHS       diff                 1
BOUNDS
ENDATA
