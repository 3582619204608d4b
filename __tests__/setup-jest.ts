import { Testing } from "cdktn";
Testing.setupJest();
