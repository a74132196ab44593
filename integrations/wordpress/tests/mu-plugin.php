<?php
/**
 * Test-only must-use plugin of `make test-wordpress`. The test's uploads are served from
 * http://127.0.0.1, which Instagram cannot fetch and instapipe refuses (422, http URL). While
 * the option `instapipe_test_https_images` is on, the payload's featured image becomes
 * https://cdn.example.com/<file name> (the Graph API simulator fails a download whose URL
 * contains "bad-media", so a file of that name makes Instagram's failure).
 */

add_filter(
	'instapipe_payload',
	function ( $event ) {
		if ( get_option( 'instapipe_test_https_images' ) && ! empty( $event['data']['featured_image'] ) ) {
			$event['data']['featured_image'] = 'https://cdn.example.com/' . basename( (string) wp_parse_url( $event['data']['featured_image'], PHP_URL_PATH ) );
		}
		return $event;
	}
);
