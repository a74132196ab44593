<?php
/**
 * WordPress's own code paths for the end-to-end test, run with php-cli inside the test's
 * WordPress: `php wp.php <docroot> <command> [json]`. Prints one JSON value.
 *
 *   install {"url", "title", "password"}      wp_install(), as the installer does
 *   image {"name"}                            a small JPEG in the uploads, as an attachment
 *   publish {"title", "content", "thumbnail", "tags", "password", "then": "draft"}
 *                                             wp_insert_post() as an importer would (then, in
 *                                             the same request, optionally back to draft)
 *   schedule {"title", "content", "thumbnail", "in"}
 *                                             wp_insert_post() of a post scheduled "in" seconds
 *   update {"id", "status"?, "thumbnail"?}     wp_update_post() / set_post_thumbnail()
 *   cron-due {"id"}                           the post's instapipe_send events fall due now (as
 *                                             if their minutes had passed)
 *   cron-unlock                               forgets an earlier WP-Cron run's lock
 *   meta {"id"}                               the plugin's post meta and the post's cron events
 *   option {"name", "value"}                  update_option()
 */

if ( PHP_SAPI !== 'cli' || $argc < 3 ) {
	fwrite( STDERR, "usage: php wp.php <docroot> <command> [json]\n" );
	exit( 2 );
}
$docroot = $argv[1];
$command = $argv[2];
$args    = isset( $argv[3] ) ? json_decode( $argv[3], true ) : array();

$url                  = getenv( 'WP_TEST_URL' );
$parts                = parse_url( $url );
$_SERVER['HTTP_HOST'] = $parts['host'] . ( isset( $parts['port'] ) ? ':' . $parts['port'] : '' );
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['SERVER_NAME'] = $parts['host'];
$_SERVER['SERVER_PORT'] = isset( $parts['port'] ) ? $parts['port'] : 80;

if ( 'install' === $command ) {
	define( 'WP_INSTALLING', true );
}
require $docroot . '/wp-load.php';

function out( $value ) {
	echo wp_json_encode( $value ), "\n";
}

switch ( $command ) {
	case 'install':
		require_once ABSPATH . 'wp-admin/includes/upgrade.php';
		$result = wp_install( $args['title'], 'admin', 'admin@example.com', false, '', wp_slash( $args['password'] ) );
		out( array( 'user_id' => $result['user_id'] ) );
		break;

	case 'image':
		$upload = wp_upload_dir();
		$file   = $upload['path'] . '/' . sanitize_file_name( $args['name'] ) . '.jpg';
		$image  = imagecreatetruecolor( 64, 64 );
		imagefill( $image, 0, 0, imagecolorallocate( $image, 200, 80, 40 ) );
		imagejpeg( $image, $file );
		$id = wp_insert_attachment(
			array(
				'post_mime_type' => 'image/jpeg',
				'post_title'     => $args['name'],
				'post_status'    => 'inherit',
			),
			$file
		);
		out( array( 'id' => $id ) );
		break;

	case 'publish':
		wp_set_current_user( 1 );
		$id = wp_insert_post(
			array(
				'post_title'   => $args['title'],
				'post_content' => $args['content'],
				'post_status'  => 'publish',
				'tags_input'   => isset( $args['tags'] ) ? $args['tags'] : array(),
				'post_password' => isset( $args['password'] ) ? $args['password'] : '',
				'meta_input'   => empty( $args['thumbnail'] ) ? array() : array( '_thumbnail_id' => (int) $args['thumbnail'] ),
			),
			true
		);
		if ( is_wp_error( $id ) ) {
			fwrite( STDERR, $id->get_error_message() . "\n" );
			exit( 1 );
		}
		if ( isset( $args['then'] ) ) {
			wp_update_post(
				array(
					'ID'          => $id,
					'post_status' => $args['then'],
				)
			);
		}
		out( array( 'id' => $id ) );
		break;

	case 'schedule':
		wp_set_current_user( 1 );
		$id = wp_insert_post(
			array(
				'post_title'    => $args['title'],
				'post_content'  => $args['content'],
				'post_status'   => 'future',
				'post_date_gmt' => gmdate( 'Y-m-d H:i:s', time() + (int) $args['in'] ),
				'post_date'     => get_date_from_gmt( gmdate( 'Y-m-d H:i:s', time() + (int) $args['in'] ) ),
				'meta_input'    => array( '_thumbnail_id' => (int) $args['thumbnail'] ),
			),
			true
		);
		out( array( 'id' => $id, 'status' => get_post_status( $id ) ) );
		break;

	case 'cron-due':
		$crons = _get_cron_array();
		$moved = 0;
		foreach ( $crons as $time => $hooks ) {
			foreach ( isset( $hooks['instapipe_send'] ) ? $hooks['instapipe_send'] : array() as $key => $event ) {
				if ( (int) $event['args'][0] === (int) $args['id'] ) {
					unset( $crons[ $time ]['instapipe_send'][ $key ] );
					$crons[ time() - 1 ]['instapipe_send'][ $key ] = $event;
					++$moved;
				}
			}
		}
		ksort( $crons );
		_set_cron_array( array_filter( $crons ) );
		out( array( 'moved' => $moved ) );
		break;

	case 'cron-unlock':
		// What a system cron job calling wp-cron.php finds when no other run holds the lock.
		delete_transient( 'doing_cron' );
		out( array( 'ok' => true ) );
		break;

	case 'update':
		wp_set_current_user( 1 );
		if ( isset( $args['thumbnail'] ) ) {
			set_post_thumbnail( (int) $args['id'], (int) $args['thumbnail'] );
		}
		if ( isset( $args['status'] ) ) {
			wp_update_post(
				array(
					'ID'          => (int) $args['id'],
					'post_status' => $args['status'],
				)
			);
		}
		out( array( 'id' => (int) $args['id'] ) );
		break;

	case 'meta':
		$id     = (int) $args['id'];
		$events = array();
		foreach ( (array) _get_cron_array() as $time => $hooks ) {
			foreach ( isset( $hooks['instapipe_send'] ) ? $hooks['instapipe_send'] : array() as $event ) {
				if ( (int) $event['args'][0] === $id ) {
					$events[] = $time;
				}
			}
		}
		out(
			array(
				'status'    => get_post_status( $id ),
				'state'     => get_post_meta( $id, '_instapipe_state', true ),
				'detail'    => get_post_meta( $id, '_instapipe_detail', true ),
				'attempt'   => (int) get_post_meta( $id, '_instapipe_attempt', true ),
				'post_id'   => get_post_meta( $id, '_instapipe_post_id', true ),
				'event_ids' => get_post_meta( $id, '_instapipe_event_id' ),
				'accounts'  => get_post_meta( $id, '_instapipe_accounts', true ),
				'cron'      => $events,
			)
		);
		break;

	case 'option':
		update_option( $args['name'], $args['value'] );
		out( array( 'ok' => true ) );
		break;

	default:
		fwrite( STDERR, "unknown command $command\n" );
		exit( 2 );
}
