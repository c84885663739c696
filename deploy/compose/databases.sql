-- One database per app (an app never reads another's tables), owned by the compose role.
CREATE DATABASE identity;
CREATE DATABASE orders;
CREATE DATABASE consent;
CREATE DATABASE transfer;
CREATE DATABASE gateway;
