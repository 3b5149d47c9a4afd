//! Features, the burn model for the four layer cases, training, calibration, inference,
//! active questions and (de)serialising weights. The only module that names burn.
