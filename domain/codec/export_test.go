package codec

// ValidJSON exposes the scanner to the black-box tests.
var ValidJSON = validJSON
