NAMEOKEN    OB br
    Y         NSUROWATA
